// The device flow's web side in Debian's Chromium (playwright-core): a
// signed-out phone opens /activate?code=... as printed by ssh, signs in,
// comes back to the code, sees the key's fingerprint, approves it and
// finds the key under /keys; an administrator lists the pending codes and
// denies one.  Every page is screenshotted into $ARTIFACTS as
// activate-NN-name.png.  Driven by t/100-admin-activate-browser.t, which
// starts the services and makes the codes; this file only talks to them.
//
// Output: lines "ok - what" / "not ok - what # detail", and "fingerprint
// FP" (what the page showed) for the driver to compare.  Environment:
// ADMIN_URL (http://localhost:PORT), CODE (as ssh shows it), DENY_FP (the
// fingerprint of a second pending code the administrator denies),
// USER_NAME, USER_PASSWORD, ADMIN_NAME, ADMIN_PASSWORD, ARTIFACTS,
// CHROMIUM.

'use strict';

const { ok, failures, launch, snapper, watch } = require('./tap');

const ADMIN = process.env.ADMIN_URL;
const CODE = process.env.CODE;

const snap = snapper('activate', true);

async function main() {
    const browser = await launch();
    const problems = [];

    // --- the user, on a phone ------------------------------------------
    const phone = await browser.newContext({
        viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true,
    });
    const p = await phone.newPage();
    watch(p, problems, [ADMIN]);

    const link = `${ADMIN}/activate?code=${CODE}`;
    await p.goto(link);
    ok(p.url().startsWith(`${ADMIN}/login?next=`), 'signed out: to the sign-in page',
       p.url());
    await snap(p, 'login');
    await p.fill('#f-name', process.env.USER_NAME);
    await p.fill('#f-password', process.env.USER_PASSWORD);
    await p.click('button[type=submit]');
    ok(p.url() === link, 'signed in: back on /activate with the code', p.url());

    ok((await p.textContent('h1')) === 'Approve this key?', 'the approval page');
    ok((await p.textContent('#act-code')) === CODE, 'the code is shown');
    const fp = await p.textContent('#act-fingerprint');
    ok(/^SHA256:[A-Za-z0-9+/]{43}$/.test(fp), 'the fingerprint is shown', fp);
    console.log(`fingerprint ${fp}`);
    ok((await p.textContent('#act-warning')).startsWith(
        'Only approve a code you just saw in your own terminal'),
       'the warning is shown');
    const where = await p.textContent('#act-browser');
    ok(/^[0-9a-f.:]+$/.test(where),
       "this browser's address is shown beside the ssh command's", where);
    ok((await p.textContent('#act-name')) === 'sent after approval',
       'tunnel name: sent after approval');
    const fits = await p.evaluate(() =>
        document.documentElement.scrollWidth <= window.innerWidth + 1);
    ok(fits, 'the approval page fits a phone screen');
    await snap(p, 'approve');

    await p.click('button[value=approve]');
    ok((await p.textContent('h1')) === 'Approved', 'approved');
    ok((await p.textContent('main')).includes(
        `Approved: the key ${fp} is now yours; your ssh session continues.`),
       'the result says the key is mine now');
    await snap(p, 'approved');

    await p.click('text=See your SSH keys');
    ok(p.url() === `${ADMIN}/keys`, 'on to /keys', p.url());
    const keys = await p.textContent('tbody');
    ok(keys.includes(fp), 'the key is listed under /keys', keys);
    ok(/activated \d{4}-\d\d-\d\d from 127\.0\.0\.1/.test(keys),
       'with its comment: activated DATE from IP', keys);
    await snap(p, 'keys');

    // the same code again
    await p.goto(link);
    ok((await p.textContent('h1')) === 'This code was already used',
       'the code works once');
    await snap(p, 'used');

    // --- the administrator ---------------------------------------------
    const desk = await browser.newContext();
    const a = await desk.newPage();
    watch(a, problems, [ADMIN]);
    await a.goto(`${ADMIN}/login`);
    await a.fill('#f-name', process.env.ADMIN_NAME);
    await a.fill('#f-password', process.env.ADMIN_PASSWORD);
    await a.click('button[type=submit]');
    await a.click('nav >> text=Activate');
    ok((await a.textContent('h1')) === 'Activate a new machine',
       'the navigation leads to /activate');
    await snap(a, 'form');
    await a.click('text=pending codes');
    ok(a.url() === `${ADMIN}/admin/activations`, 'on to the pending codes', a.url());
    const row = a.locator('#act-pending tbody tr', { hasText: process.env.DENY_FP });
    ok(await row.count() === 1, 'the pending code is listed');
    ok(!(await a.textContent('main')).includes(fp), 'the approved one is not');
    await snap(a, 'pending');
    await row.locator('button:has-text("Deny")').click();
    ok((await a.textContent('.msg.good')).includes('The code was denied'),
       'the administrator denied it');
    ok((await a.textContent('main')).includes('No code is pending'),
       'nothing pending any more');
    await snap(a, 'denied');

    ok(problems.length === 0, 'no console errors, no CSP violations, no '
       + 'external requests', problems.join('; '));

    await browser.close();
}

main().then(() => {
    console.log('done');
    process.exit(failures() ? 1 : 0);
}, (e) => {
    console.log(`not ok - the browser flow ran to the end # ${e.stack || e}`);
    console.log('failed');
    process.exit(1);
});
