// The web step of README's Quick start, for t/005-quickstart.t: open the
// setup URL that `make run` printed, create (or take over, for a user made
// with tunnelctl) the administrator with the first-run form, then report
// who the home page says is signed in.  One JSON line on stdout:
// {"setup": URL the browser landed on, "who": signed-in name, "admin":
// the administrator's links are in the menu}.  Environment: SETUP_URL,
// USER_NAME, PASSWORD, CHROMIUM; playwright-core comes from NODE_PATH
// (admin/browser-tests/node_modules).

'use strict';

const { chromium } = require('playwright-core');

async function main() {
    const browser = await chromium.launch({
        executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
        args: ['--headless', '--no-sandbox', '--disable-gpu',
               '--disable-background-networking', '--disable-component-update',
               '--no-first-run', '--disable-dev-shm-usage'],
    });
    const page = await (await browser.newContext()).newPage();
    const out = {};

    await page.goto(process.env.SETUP_URL);
    out.setup = page.url();
    await page.fill('#f-name', process.env.USER_NAME);
    await page.fill('#f-password', process.env.PASSWORD);
    await page.fill('#f-password2', process.env.PASSWORD);
    await page.click('button[type=submit]');

    await page.goto(new URL('/', process.env.SETUP_URL).href);
    out.home = page.url();
    out.who = (await page.textContent('header .who').catch(() => '')) || '';
    out.admin = await page.locator('nav a[href="/admin/users"]').count() === 1;

    console.log(JSON.stringify(out));
    await browser.close();
}

main().catch((e) => {
    console.log(JSON.stringify({ error: String(e) }));
    process.exit(1);
});
