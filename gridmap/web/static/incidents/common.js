/* Helpers shared by the incident pages: escaping, CSRF-carrying JSON requests, ids. */
(function () {
    'use strict';
    window.gmEscape = window.gmEscape || function (value) {
        return String(value === null || value === undefined ? '' : value)
            .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
            .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
    };

    function csrfToken() {
        var meta = document.querySelector('meta[name=csrf-token]');
        return meta ? meta.getAttribute('content') : '';
    }

    // crypto.randomUUID needs a secure context; intranet servers are often plain http.
    function uuid4() {
        var b = new Uint8Array(16);
        window.crypto.getRandomValues(b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join('');
        return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
    }

    /* Resolves to {status, body}; rejects only when the network fails. */
    function sendJSON(url, method, payload) {
        return fetch(url, {
            method: method, credentials: 'same-origin',
            headers: {'Content-Type': 'application/json', 'X-CSRFToken': csrfToken(), 'Accept': 'application/json'},
            body: JSON.stringify(payload)
        }).then(function (r) {
            return r.json().catch(function () { return {}; }).then(function (body) { return {status: r.status, body: body}; });
        });
    }

    function getJSON(url) {
        return fetch(url, {credentials: 'same-origin', headers: {'Accept': 'application/json'}}).then(function (r) {
            return r.json().catch(function () { return {}; }).then(function (body) { return {status: r.status, body: body}; });
        });
    }

    function errorText(body) {
        var e = body && body.error;
        if (!e) { return 'error'; }
        return (e.field ? e.field + ': ' : '') + e.message;
    }

    function readJSON(id) {
        var el = document.getElementById(id);
        return el ? JSON.parse(el.textContent) : {};
    }

    window.gmIncidents = {csrfToken: csrfToken, uuid4: uuid4, sendJSON: sendJSON, getJSON: getJSON,
                          errorText: errorText, readJSON: readJSON};
})();
