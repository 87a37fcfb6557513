// A hostile page served through a tunnel on a sibling subdomain of the
// admin host (same site: SameSite cookies do not stop it), in Debian's
// Chromium (playwright-core).  The administrator signs in at ADMIN_URL;
// then, in the same browser, a page of EVIL_URL (a backend the test
// controls, behind ssh -R) tries what a CSRF or cookie theft would: read
// document.cookie, read an admin page with fetch(credentials: 'include'),
// POST the admin's kick, invite and user forms with fetch (no-cors, with
// credentials) and with real form submissions (top-level navigation, a
// made-up csrf field).  The driver then checks that nothing changed and
// that the backend never saw the admin's cookies.  Driven by
// t/191-security-csrf-browser.t.
//
// Chromium counts evil.localhost and localhost as two sites (no public
// suffix list entry for localhost), while NAME.tunnel.example.com and
// admin.tunnel.example.com are one site in production.  So the attacks run
// twice: from the tunnel page (cross-site here) and from the same app
// reached as http://localhost:PORT (SAME_SITE_URL: same site as the admin
// host, as a tunnel page is in production: the session cookie goes along).
//
// Protocol: "ok - ..." / "not ok - ... # detail" lines; "need check"
// waits for the driver's "checked".  Environment: ADMIN_URL, EVIL_URL,
// SAME_SITE_URL,
// ADMIN_USER, ADMIN_PASSWORD, VICTIM_TUNNEL, ATTACKER_ID, ARTIFACTS,
// CHROMIUM.

'use strict';

const { ok, failures, ask, endQuestions, launch, snapper } = require('./tap');

const ADMIN = process.env.ADMIN_URL;
const EVIL = process.env.EVIL_URL;
const SAME_SITE = process.env.SAME_SITE_URL;
const snap = snapper('csrf', true);

// the state-changing forms of the admin, as an attacker would fill them
const FORMS = [
    ['/admin/tunnels', { action: 'kick', name: process.env.VICTIM_TUNNEL,
                         confirm: 'yes', reason: 'csrf' }],
    ['/admin/invites', { action: 'create', hours: '24', admin: '1',
                         note: 'csrf' }],
    ['/admin/users', { action: 'promote', id: process.env.ATTACKER_ID }],
];
const FAKE_CSRF = 'a'.repeat(64);

// One origin's attacks.  sameSite: Chromium counts the page as the admin
// host's own site, so the browser sends the session cookie with its POSTs
// and only the admin's Origin / Sec-Fetch-Site check and CSRF token stand
// in the way (403 "This form has expired"); otherwise the SameSite=Lax
// cookie stays home and the POST is answered as a signed-out one.
async function attack(ctx, origin, what, sameSite) {
    const e = await ctx.newPage();
    const first = await e.goto(`${origin}/attack`);
    ok(first.status() === 200, `${what}: loads`, first.status());
    await snap(e, `${what.replace(/\W+/g, '-')}`);

    if (!sameSite) {
        // (a page on another port of localhost would see localhost's
        // cookies: ports do not separate cookies, host names do)
        const cookie = await e.evaluate(() => document.cookie);
        ok(!/tunnel_(session|csrf)/.test(cookie),
           `${what}: document.cookie holds no admin cookie`, cookie);
    }

    // reading an admin page: CORS gives the script nothing
    const read = await e.evaluate(async (url) => {
        try {
            const r = await fetch(url, { credentials: 'include' });
            const t = await r.text();
            return `read ${r.status} ${t.length} bytes`;
        } catch (err) {
            return `blocked: ${err.name}`;
        }
    }, `${ADMIN}/admin/users`);
    ok(/^blocked: TypeError$/.test(read),
       `${what}: fetch(credentials: include) of an admin page is blocked`,
       read);

    // fetch POSTs of the forms: sent (no-cors), answered out of sight
    for (const [path, fields] of FORMS) {
        const res = await e.evaluate(async ([url, f]) => {
            try {
                const r = await fetch(url, {
                    method: 'POST', mode: 'no-cors', credentials: 'include',
                    body: new URLSearchParams(f) });
                return `sent (${r.type})`;
            } catch (err) {
                return `failed: ${err.name}`;
            }
        }, [`${ADMIN}${path}`, { ...fields, csrf: FAKE_CSRF }]);
        ok(res === 'sent (opaque)', `${what}: fetch POST ${path} was sent`,
           res);
    }

    // real form submissions, as a top-level navigation
    for (const [path, fields] of FORMS) {
        await e.goto(`${origin}/attack`);
        const [resp] = await Promise.all([
            e.waitForNavigation(),
            e.evaluate(([url, f]) => {
                const form = document.createElement('form');
                form.method = 'POST';
                form.action = url;
                for (const [k, v] of Object.entries(f)) {
                    const i = document.createElement('input');
                    i.type = 'hidden'; i.name = k; i.value = v;
                    form.appendChild(i);
                }
                document.body.appendChild(form);
                form.submit();
            }, [`${ADMIN}${path}`, { ...fields, csrf: FAKE_CSRF }]),
        ]);
        // the POST's own answer (the first of any redirects)
        let req = resp.request();
        while (req.redirectedFrom()) req = req.redirectedFrom();
        const post = await req.response();
        const text = await e.textContent('body');
        if (sameSite) {
            ok(req.method() === 'POST' && post.status() === 403,
               `${what}: form POST ${path}: 403`,
               `${req.method()} ${post.status()}`);
            ok(/This form has expired/.test(text),
               `${what}: ... "This form has expired"`, text.slice(0, 200));
        } else {
            const to = post.headers().location || '';
            ok(req.method() === 'POST' && post.status() === 303
               && /\/login\b/.test(to),
               `${what}: form POST ${path}: answered as signed out (303 to `
               + '/login: the browser kept the cookie home)',
               `${req.method()} ${post.status()} ${to}`);
        }
        const slug = (x) => x.replace(/\W+/g, '-');
        await snap(e, `${slug(what)}-${slug(path)}`);
    }
    await e.close();
}

async function main() {
    const browser = await launch();
    const ctx = await browser.newContext();

    // --- the administrator signs in ---------------------------------------
    const a = await ctx.newPage();
    await a.goto(`${ADMIN}/login`);
    await a.fill('#f-name', process.env.ADMIN_USER);
    await a.fill('#f-password', process.env.ADMIN_PASSWORD);
    await Promise.all([a.waitForNavigation(), a.click('button[type=submit]')]);
    const jar = await ctx.cookies(ADMIN);
    const names = jar.map((c) => c.name).sort();
    ok(names.includes('__Host-tunnel_session'),
       'the browser holds the admin session cookie', names.join(','));
    const users = await a.goto(`${ADMIN}/admin/users`);
    ok(users.status() === 200, 'the administrator sees /admin/users',
       users.status());

    await attack(ctx, EVIL, 'tunnel page', false);
    await attack(ctx, SAME_SITE, 'same-site page', true);

    await ask('need check');

    // the administrator's own session is untouched
    const again = await a.goto(`${ADMIN}/admin/users`);
    ok(again.status() === 200 && a.url() === `${ADMIN}/admin/users`,
       'the administrator is still signed in', `${again.status()} ${a.url()}`);

    endQuestions();
    await browser.close();
    console.log(failures() ? 'failed' : 'done');
}

main().catch((err) => {
    ok(false, 'browser flow', err.stack);
    endQuestions();
    console.log('failed');
    process.exit(1);
});
