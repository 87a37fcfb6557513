// What every browser test here shares: TAP-style output ("ok - ..." /
// "not ok - ... # detail"), the one-line question/answer protocol with the
// Perl driver on stdin, Chromium's launch (Debian's /usr/bin/chromium,
// headless, no network of its own), screenshots into ARTIFACTS, and a
// watch on a page for console errors, page errors, failed responses and
// requests that leave the allowed origins (the admin loads nothing
// external and breaks no CSP rule).

'use strict';

const { chromium } = require('playwright-core');
const readline = require('readline');
const path = require('path');

let failed = 0;
const waiting = [];
let lines = null;

function ok(cond, what, detail) {
    if (!cond) failed++;
    console.log(`${cond ? 'ok' : 'not ok'} - ${what}` +
                (cond || detail === undefined || detail === ''
                 ? '' : ` # ${String(detail).replace(/\n/g, ' ')}`));
}

function failures() {
    return failed;
}

// prints msg for the driver and resolves with its one-line answer
function ask(msg) {
    if (lines === null) {
        lines = readline.createInterface({ input: process.stdin });
        lines.on('line', (l) => { const w = waiting.shift(); if (w) w(l); });
    }
    return new Promise((resolve) => {
        waiting.push(resolve);
        console.log(msg);
    });
}

// no more questions: stdin is let go, so the process can end
function endQuestions() {
    if (lines !== null) {
        lines.close();
        lines = null;
    }
}

function launch() {
    return chromium.launch({
        executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
        args: ['--headless', '--no-sandbox', '--disable-gpu',
               '--disable-background-networking', '--disable-component-update',
               '--no-first-run', '--disable-dev-shm-usage'],
    });
}

// snap(page, name) saves ARTIFACTS/PREFIX-NN-name.png (numbered: the
// order of the flow) or PREFIX-name.png
function snapper(prefix, numbered) {
    let shot = 0;
    return async (page, name) => {
        shot++;
        const n = numbered ? `${String(shot).padStart(2, '0')}-` : '';
        await page.screenshot({
            path: path.join(process.env.ARTIFACTS, `${prefix}-${n}${name}.png`),
            fullPage: true,
        });
    };
}

// origins: the prefixes a page may request; okStatus: 4xx/5xx statuses
// that are answers by design (a refused form's 422); without checkStatus
// responses are not looked at
function watch(page, problems, origins, { checkStatus = false,
                                          okStatus = [] } = {}) {
    page.on('console', (m) => {
        if (m.type() === 'error'
            && !m.text().startsWith('Failed to load resource')) {
            problems.push(`console: ${m.text()}`);
        }
    });
    if (checkStatus) {
        page.on('response', (r) => {
            if (r.status() >= 400 && !okStatus.includes(r.status())) {
                problems.push(`HTTP ${r.status()}: ${r.url()}`);
            }
        });
    }
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('request', (r) => {
        if (!origins.some((o) => r.url().startsWith(o))) {
            problems.push(`external request: ${r.url()}`);
        }
    });
}

module.exports = { ok, failures, ask, endQuestions, launch, snapper,
                   watch };
