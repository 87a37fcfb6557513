// The live tunnels dashboard in Debian's Chromium (playwright-core): an
// administrator watches /admin/tunnels while the driver opens a tunnel
// with a real ssh -R (it must appear without a reload within 3 s), sends
// traffic (its request count must rise), and closes another tunnel (it
// must vanish within 3 s); a second user's /tunnels never shows the first
// user's tunnel; the administrator kicks the tunnel through the confirm
// page and the driver times the ssh client's exit and the 404 from the
// click.  Without JavaScript the page is whole.  Screenshots go to
// $ARTIFACTS (dashboard-*.png).  Driven by t/100-admin-dashboard-browser.t.
//
// Protocol with the driver (as flow.js): "ok - ..." / "not ok - ... #
// detail" lines; "need NAME" asks the driver for something and waits for
// its one-line answer on stdin: "need tunnel" (erin's tunnel up),
// "need traffic" (5 requests through it), "kicked CLICK_MS DONE_MS" (the
// driver checks the 404 and the ssh exit, answers "checked"), "need close"
// (frank's ssh quits).  Environment: ADMIN_URL, TUNNEL_NAME, ADMIN_USER,
// ADMIN_PASSWORD, USER2, USER2_PASSWORD, USER2_TUNNEL, ARTIFACTS, CHROMIUM.

'use strict';

const { ok, failures, ask, endQuestions, launch, snapper,
        watch } = require('./tap');

const ADMIN = process.env.ADMIN_URL;
const NAME = process.env.TUNNEL_NAME;
const OTHER = process.env.USER2_TUNNEL;

const snap = snapper('dashboard', false);

async function signIn(ctx, user, password) {
    const p = await ctx.newPage();
    await p.goto(`${ADMIN}/login`);
    await p.fill('#f-name', user);
    await p.fill('#f-password', password);
    await p.click('button[type=submit]');
    return p;
}

const row = (name) => `#live tbody tr[data-name="${name}"]`;

async function main() {
    const browser = await launch();
    const problems = [];

    // --- the administrator's dashboard ------------------------------------
    const adminCtx = await browser.newContext({ viewport: { width: 1400, height: 800 } });
    const a = await signIn(adminCtx, process.env.ADMIN_USER,
                           process.env.ADMIN_PASSWORD);
    watch(a, problems, [ADMIN]);
    await a.click('nav >> text=All tunnels');
    ok(a.url() === `${ADMIN}/admin/tunnels`, 'the nav leads to All tunnels', a.url());
    ok(await a.locator(row(OTHER)).count() === 1, 'the other user\'s tunnel is listed');
    ok(await a.locator(row(NAME)).count() === 0, `${NAME} is not up yet`);
    await a.evaluate(() => { window.notReloaded = true; });
    await snap(a, '1-before');

    // a tunnel that opens appears within 3 s, without a reload
    const up = await ask('need tunnel');
    const upAt = Number(up.split(' ')[1]);
    await a.waitForSelector(row(NAME), { timeout: 5000 }).catch(() => {});
    const appeared = Date.now();
    ok(await a.locator(row(NAME)).count() === 1, `${NAME} appears on the page`);
    ok(appeared - upAt < 3000, 'within 3 s of the tunnel going up',
       `${appeared - upAt} ms`);
    console.log(`# appeared ${appeared - upAt} ms after the tunnel went up`);
    ok(await a.evaluate(() => window.notReloaded === true), '... without a reload');
    const link = a.locator(`${row(NAME)} td:first-child a`);
    ok(/^http:\/\//.test(await link.getAttribute('href') || ''),
       'its name links to its URL', await link.getAttribute('href'));

    // its request count rises with traffic
    const reqs = async () => Number(await a.textContent(
        `${row(NAME)} td[data-col="requests"]`));
    const before = await reqs();
    await ask('need traffic');
    const sent = Date.now();
    let after = before;
    while (Date.now() - sent < 4000 && after < before + 5) {
        await a.waitForTimeout(200);
        after = await reqs();
    }
    ok(after >= before + 5, 'its request count rises after 5 requests',
       `${before} -> ${after}`);
    ok(Date.now() - sent < 4000, '... within 4 s', `${Date.now() - sent} ms`);
    const bytes = await a.textContent(`${row(NAME)} td[data-col="in"]`);
    ok(bytes !== '0 B', 'bytes in counted', bytes);
    await snap(a, '2-live');

    // sorting by a column (a link: works with and without the script)
    await a.click('#live th >> text=Requests');
    ok(/sort=requests&dir=desc/.test(a.url()), 'sort by requests', a.url());
    const first = await a.getAttribute('#live tbody tr:first-child', 'data-name');
    ok(first === NAME, 'the busiest tunnel first', first);

    // --- a second user sees only their own --------------------------------
    const userCtx = await browser.newContext();
    const u = await signIn(userCtx, process.env.USER2, process.env.USER2_PASSWORD);
    watch(u, problems, [ADMIN]);
    await u.click('nav >> text=My tunnels');
    let leaked = false;
    for (let i = 0; i < 5; i++) {
        if ((await u.content()).includes(NAME)) leaked = true;
        await u.waitForTimeout(500);
    }
    ok(!leaked, `${process.env.USER2}'s page never shows ${NAME}, across polls`);
    ok(await u.locator(row(OTHER)).count() === 1, '... but shows their own');
    await snap(u, '3-user');

    // --- Kick, confirmed, timed --------------------------------------------
    await a.click(`${row(NAME)} button:has-text("Kick")`);
    ok((await a.textContent('h1')) === `Kick ${NAME}?`, 'Kick asks to confirm',
       await a.textContent('h1'));
    await a.fill('#f-reason', 'dashboard test');
    await snap(a, '4-confirm');
    const click = Date.now();
    await Promise.all([a.waitForNavigation(), a.click('#kick-confirm')]);
    const done = Date.now();
    const checked = await ask(`kicked ${click} ${done}`);
    ok(checked === 'checked', 'the driver checked the kick', checked);
    ok((await a.textContent('#flash')).includes(`${NAME} was kicked`),
       'the page says it was kicked');
    ok(await a.locator(row(NAME)).count() === 0, 'its row is gone');
    console.log(`# kick: POST answered ${done - click} ms after the click`);
    await snap(a, '5-kicked');

    // a tunnel that closes disappears within 3 s
    await a.goto(`${ADMIN}/admin/tunnels`);
    ok(await a.locator(row(OTHER)).count() === 1, `${OTHER} listed`);
    const closed = Number((await ask('need close')).split(' ')[1]);
    await a.waitForSelector(row(OTHER), { state: 'detached', timeout: 5000 })
        .catch(() => {});
    const vanished = Date.now();
    ok(await a.locator(row(OTHER)).count() === 0, `${OTHER} disappears`);
    ok(vanished - closed < 3000, 'within 3 s of its ssh quitting',
       `${vanished - closed} ms`);
    console.log(`# vanished ${vanished - closed} ms after ssh quit`);
    await snap(a, '6-empty');

    // --- without JavaScript ---------------------------------------------------
    const noJs = await browser.newContext({ javaScriptEnabled: false });
    await noJs.addCookies(await adminCtx.cookies());
    const n = await noJs.newPage();
    await n.goto(`${ADMIN}/admin/tunnels`);
    ok(await n.locator('#live').count() === 1
       && await n.locator('#refresh').count() === 1,
       'without JavaScript: the table and a Refresh link');
    await snap(n, '7-nojs');
    await noJs.close();

    // a phone
    await a.setViewportSize({ width: 390, height: 844 });
    ok(await a.evaluate(() =>
        document.documentElement.scrollWidth <= window.innerWidth + 1),
       'the dashboard fits a phone screen');

    ok(problems.length === 0, 'no console errors, no CSP violations, no '
       + 'external requests', problems.join('; '));

    await browser.close();
    endQuestions();
    console.log(failures() ? `failed ${failures()}` : 'done');
}

main().catch((e) => {
    console.log(`not ok - dashboard crashed # ${String(e.stack || e).replace(/\n/g, ' ')}`);
    process.exit(1);
});
