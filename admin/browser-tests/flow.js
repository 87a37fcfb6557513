// Browser walk through the admin UI with Debian's Chromium (playwright-core):
// first-run setup -> create an invitation -> join with it in a second
// browser context -> add an SSH key -> (the Perl side opens the tunnel with
// ssh -R) -> open the tunnel URL -> sign out.  Every page is screenshotted
// into $ARTIFACTS.  Driven by t/100-admin-browser.t, which starts the
// services; this file only talks to them.
//
// Protocol with the driver: results are lines "ok - what" / "not ok - what
// # detail"; "need tunnel" asks the driver to open the tunnel, which answers
// "tunnel up" on stdin; "command TEXT" reports the start page's ssh command
// (as copied by its Copy button) for the driver to compare.  Environment:
// ADMIN_URL (http://localhost:PORT), TUNNEL_URL, PUBKEY (the public key
// line), ARTIFACTS, CHROMIUM.

'use strict';

const { ok, failures, ask, endQuestions, launch, snapper,
        watch } = require('./tap');

const ADMIN = process.env.ADMIN_URL;
const TUNNEL = process.env.TUNNEL_URL;
const PUBKEY = process.env.PUBKEY;

const snap = snapper('admin', true);

async function main() {
    const browser = await launch();

    const problems = [];

    // --- the administrator ---------------------------------------------
    const adminCtx = await browser.newContext();
    const a = await adminCtx.newPage();
    watch(a, problems, [ADMIN, TUNNEL],
          { checkStatus: true, okStatus: [422] });

    await a.goto(`${ADMIN}/`);
    ok(a.url() === `${ADMIN}/setup`, 'a fresh install sends / to /setup', a.url());
    const css = await a.evaluate(() =>
        getComputedStyle(document.querySelector('header')).borderBottomStyle);
    ok(css === 'solid', 'our stylesheet is applied (CSP allows it)', css);
    await snap(a, 'setup');

    await a.fill('#f-name', 'admin');
    await a.fill('#f-password', 'short');
    await a.fill('#f-password2', 'short');
    await a.click('button[type=submit]');
    ok((await a.textContent('.msg.bad')).includes('too short'),
       'a weak password is refused with a reason');
    ok(await a.inputValue('#f-name') === 'admin', 'the typed name is kept');
    await snap(a, 'setup-error');

    await a.fill('#f-password', 'a good long admin password');
    await a.fill('#f-password2', 'a good long admin password');
    await a.click('button[type=submit]');
    ok(a.url().startsWith(`${ADMIN}/?done=welcome`), 'setup signs the admin in', a.url());
    ok((await a.textContent('main')).includes('Signed in as admin'), 'start page');
    await snap(a, 'home');

    const cookies = await adminCtx.cookies();
    const sc = cookies.find((c) => c.name === '__Host-tunnel_session');
    ok(sc && sc.httpOnly && sc.secure && sc.sameSite === 'Lax' && sc.path === '/'
       && !sc.domain.startsWith('.'),
       'session cookie: __Host-, HttpOnly, Secure, SameSite=Lax, host-only',
       JSON.stringify(sc));

    await a.click('nav >> text=Invitations');
    await snap(a, 'invites');
    await a.fill('#f-note', 'for dave');
    await a.click('button:has-text("Create the link")');
    const link = (await a.textContent('#invite-link')).trim();
    ok(/\/join\/[A-Za-z0-9_-]{24}$/.test(link), 'invitation link shown', link);
    await snap(a, 'invite-created');

    // --- the invitee, in a second browser context -----------------------
    const daveCtx = await browser.newContext({
        permissions: ['clipboard-read', 'clipboard-write'],
    });
    const d = await daveCtx.newPage();
    watch(d, problems, [ADMIN, TUNNEL],
          { checkStatus: true, okStatus: [422] });

    await d.goto(link);
    ok((await d.textContent('h1')) === 'Join ngx-tunnel', 'invitation page');
    await snap(d, 'join');
    await d.fill('#f-name', 'dave');
    await d.fill('#f-password', 'daves long password');
    await d.fill('#f-password2', 'daves long password');
    await d.click('button[type=submit]');
    ok((await d.textContent('main')).includes('Signed in as dave'),
       'joined and signed in');
    await snap(d, 'joined');

    await d.click('nav >> text=SSH keys');
    await d.fill('#f-key', 'ssh-ed25519 AAAA broken');
    await d.click('button:has-text("Add the key")');
    ok((await d.textContent('.msg.bad')).includes('damaged'),
       'a broken key is refused with a reason');
    await snap(d, 'key-error');
    await d.fill('#f-key', PUBKEY);
    await d.click('button:has-text("Add the key")');
    ok((await d.textContent('.msg.good')).includes('The key was added'),
       'key added');
    const fp = await d.textContent('td.mono');
    ok(/^SHA256:[A-Za-z0-9+/]{43}$/.test(fp), 'fingerprint shown', fp);
    console.log(`fingerprint ${fp}`);
    await snap(d, 'keys');

    await d.click('nav >> text=Names');
    await d.fill('#f-name', 'daveapp');
    await d.click('button:has-text("Reserve")');
    ok((await d.textContent('.msg.good')).includes('yours'), 'name reserved');
    await snap(d, 'names');

    // --- the start page's command, copied --------------------------------
    await d.click('a.brand');
    ok((await d.textContent('h1')) === 'Your tunnels', 'start page title');
    const command = (await d.textContent('#tunnel-command')).trim();
    const url = await d.textContent('#tunnel-url');
    ok(url === TUNNEL, 'the start page shows the tunnel URL', url);
    const copy = d.locator('button[data-copy="tunnel-command"]');
    ok(await copy.isVisible(), 'the copy button is shown (script allowed by CSP)');
    await copy.click();
    await d.waitForFunction(() =>
        document.querySelector('button[data-copy]').textContent === 'Copied');
    ok(true, 'the button says Copied');
    const copied = await d.evaluate(() => navigator.clipboard.readText());
    ok(copied === command, 'the clipboard holds the command', copied);
    console.log(`command ${copied}`);
    await snap(d, 'home-command');

    // without JavaScript: no button, the command still there
    const noJs = await browser.newContext({ javaScriptEnabled: false });
    await noJs.addCookies(await daveCtx.cookies());
    const n = await noJs.newPage();
    watch(n, problems, [ADMIN, TUNNEL],
          { checkStatus: true, okStatus: [422] });
    await n.goto(`${ADMIN}/`);
    ok(!(await n.locator('button[data-copy]').isVisible())
       && (await n.textContent('#tunnel-command')).trim() === command,
       'without JavaScript: the command, no button');
    await noJs.close();

    // --- the tunnel -------------------------------------------------------
    const answer = await ask('need tunnel');
    ok(answer === 'tunnel up', 'the driver opened the tunnel', answer);
    const t = await daveCtx.newPage();
    const resp = await t.goto(TUNNEL);
    ok(resp && resp.status() === 200, 'the tunnel URL answers in the browser',
       resp && resp.status());
    await snap(t, 'tunnel');
    await t.close();

    // --- the admin sees it; phone layout ---------------------------------
    await a.click('nav >> text=Users');
    ok((await a.textContent('tbody')).includes('dave'), 'admin lists dave');
    const own = a.locator('tbody tr', { hasText: 'your account' });
    ok(await own.count() === 1 && (await own.textContent()).startsWith('admin')
       && await own.locator('button').count() === 0,
       "the admin's own row offers no action");
    const daveRow = a.locator('tbody tr', { hasText: 'dave' });
    ok((await daveRow.locator('.confirm label').textContent()).trim()
       === 'Delete dave with their keys and names',
       "Delete's checkbox says what it confirms");
    // one line box per date: a range over its text has one client rect
    const wrapped = await a.evaluate(() => [...document.querySelectorAll('td.date')]
        .filter((td) => {
            const range = document.createRange();
            range.selectNodeContents(td);
            return getComputedStyle(td).whiteSpace !== 'nowrap'
                   || range.getClientRects().length !== 1;
        }).map((td) => td.textContent));
    ok(wrapped.length === 0 && await a.locator('td.date').count() >= 4,
       'dates stay on one line', wrapped.join(', '));
    await snap(a, 'users');
    await a.setViewportSize({ width: 390, height: 844 });
    const wide = await a.evaluate(() =>
        document.documentElement.scrollWidth <= window.innerWidth + 1);
    ok(wide, 'users page fits a phone screen');
    await snap(a, 'users-phone');

    // --- sign out ----------------------------------------------------------
    await d.click('button:has-text("Sign out")');
    ok(d.url() === `${ADMIN}/login`, 'signed out, on /login', d.url());
    await snap(d, 'signed-out');
    await d.goto(`${ADMIN}/keys`);
    ok(d.url() === `${ADMIN}/login?next=/keys`,
       'pages need signing in again (and come back after)', d.url());

    // --- the audit log: all of the above, newest first; a filter ----------
    await a.setViewportSize({ width: 1280, height: 800 });
    await a.click('nav >> text=Audit log');
    const kinds = await a.locator('table.audit tbody tr td:nth-child(2)')
        .allTextContents();
    ok(kinds[0] === 'logout' && ['open', 'key_added', 'name_reserved', 'join',
        'invite_created', 'setup'].every((k) => kinds.includes(k)),
       'the audit log shows what was done, newest first', kinds.join(','));
    await snap(a, 'audit');
    await a.fill('#f-user', 'dave');
    await a.selectOption('#f-kind', 'open');
    await a.click('button:has-text("Filter")');
    const rows = a.locator('table.audit tbody tr');
    ok(a.url().includes('user=dave') && await rows.count() === 1
       && (await rows.first().textContent()).includes('daveapp'),
       "the filter form (plain GET) narrows it to dave's tunnel", a.url());
    await snap(a, 'audit-filtered');

    ok(problems.length === 0, 'no console errors, no CSP violations, no '
       + 'external requests', problems.join('; '));

    await browser.close();
    endQuestions();
    console.log(failures() ? `failed ${failures()}` : 'done');
}

main().catch((e) => {
    console.log(`not ok - browser flow crashed # ${String(e.stack || e).replace(/\n/g, ' ')}`);
    process.exit(1);
});
