/* Service worker of the pin page (scope: the pin page only). A grid worker who has opened the pin
   page once can open it again without a network: the page itself is network-first (a fresh copy
   is kept after every online load, so the cached one carries the latest session's CSRF token and
   language) and falls back to the last copy; the page's own scripts, styles and Leaflet images
   under /static/ and /vendor/ come from a cache named after their version, so a new release
   replaces them all at once. API calls are not touched: pins made offline wait in the page's
   localStorage queue and are posted by the page, with their client_id, when the network returns.

   The server prepends self.GM_PIN_SHELL = {page, assets} and self.GM_PIN_VERSION. */
'use strict';

var SHELL = self.GM_PIN_SHELL;
var PREFIX = 'gridmap-pin-';
var CACHE = PREFIX + self.GM_PIN_VERSION;
// On a network that hangs rather than fails, show the kept page after this long.
var PAGE_TIMEOUT_MS = 4000;

function storePage(cache) {
    return fetch(SHELL.page, {credentials: 'same-origin', cache: 'no-store', redirect: 'manual'})
        .then(function (response) {
            if (response.ok && response.type === 'basic') { return cache.put(SHELL.page, response); }
            return undefined;
        })
        .catch(function () { return undefined; });  // kept on the next online visit instead
}

self.addEventListener('install', function (event) {
    event.waitUntil(caches.open(CACHE).then(function (cache) {
        return Promise.all([cache.addAll(SHELL.assets), storePage(cache)]);
    }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener('activate', function (event) {
    event.waitUntil(caches.keys().then(function (names) {
        return Promise.all(names.filter(function (name) {
            return name.indexOf(PREFIX) === 0 && name !== CACHE;
        }).map(function (name) { return caches.delete(name); }));
    }).then(function () { return self.clients.claim(); }));
});

function page(request) {
    return caches.open(CACHE).then(function (cache) {
        var network = fetch(request).then(function (response) {
            if (response.ok && response.type === 'basic') {
                cache.put(SHELL.page, response.clone());
            } else if (response.type === 'opaqueredirect') {
                // Sent to the login page: the kept page belongs to a session that has ended.
                cache.delete(SHELL.page);
            }
            return response;
        });
        var late = new Promise(function (resolve, reject) {
            setTimeout(function () { reject(new Error('slow network')); }, PAGE_TIMEOUT_MS);
        });
        return Promise.race([network, late]).catch(function () {
            return cache.match(SHELL.page).then(function (kept) { return kept || network; });
        });
    });
}

function asset(request) {
    return caches.open(CACHE).then(function (cache) {
        return cache.match(request).then(function (kept) {
            return kept || fetch(request).then(function (response) {
                if (response.ok && response.type === 'basic') { cache.put(request, response.clone()); }
                return response;
            });
        });
    });
}

self.addEventListener('fetch', function (event) {
    var request = event.request;
    if (request.method !== 'GET') { return; }
    var url = new URL(request.url);
    if (url.origin !== self.location.origin) { return; }
    if (request.mode === 'navigate' && url.pathname === SHELL.page) {
        event.respondWith(page(request));
    } else if (url.pathname.indexOf('/static/') === 0 || url.pathname.indexOf('/vendor/') === 0) {
        event.respondWith(asset(request));
    }
});
