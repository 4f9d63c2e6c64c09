/* The phone pin page: tap (or locate) to place a pin, drag to correct, see the grid/village/town
   at once, see possible duplicates, save. Pins that cannot be sent are kept in localStorage,
   keyed by their client id, shown as a queue, and sent when the network returns; the server
   treats a client id it has seen as the same pin, so nothing arrives twice. A service worker
   (pin-sw.js) keeps the page and its files, so after one online visit it opens offline too. */
(function () {
    'use strict';
    var G = window.gmIncidents;
    var cfg = G.readJSON('pin-config');
    var T = G.readJSON('pin-text');
    var QUEUE_KEY = 'gridmap.pinQueue';
    var categories = {};
    cfg.categories.forEach(function (c) { categories[c.code] = c; });

    var $ = function (id) { return document.getElementById(id); };
    var form = $('pin-form');

    // --- map ---------------------------------------------------------------------------------
    var map = L.map('pin-map', {zoomControl: true});
    window.gmPinMap = map;
    if (cfg.basemap && cfg.basemap.url) {
        L.tileLayer(cfg.basemap.url, {attribution: cfg.basemap.attribution || '', maxZoom: 19}).addTo(map);
    }
    var b = cfg.bounds;
    map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
    var grids = L.geoJSON(null, {interactive: false, style: {color: '#e07b00', weight: 1, fillOpacity: 0.04}}).addTo(map);
    var incidentsLayer = L.layerGroup().addTo(map);
    var shown = {};
    var pin = null;

    function bboxParam() {
        var bb = map.getBounds();
        return [bb.getWest(), bb.getSouth(), bb.getEast(), bb.getNorth()].map(function (v) { return v.toFixed(5); }).join(',');
    }

    function when(iso) { return iso ? String(iso).replace('T', ' ').slice(0, 16) : ''; }

    function colourOf(code) {
        var c = (categories[code] || {}).colour || '';
        return /^#[0-9a-fA-F]{3,6}$/.test(c) ? c : '#777777';
    }

    function popupHtml(p) {
        var url = cfg.urls['case'].replace('__ID__', encodeURIComponent(p.id));
        return '<div class="gm-inc-popup"><b>' + gmEscape(p.category_zh || p.category)
            + (p.subcategory_zh ? ' · ' + gmEscape(p.subcategory_zh) : '') + '</b><br>'
            + gmEscape(p.status_zh) + ' · ' + gmEscape(when(p.occurred_at)) + '<br>'
            + gmEscape(p.village_name) + '<div class="gm-inc-desc">' + gmEscape(p.description) + '</div>'
            + '<a class="gm-case-link" href="' + gmEscape(url) + '">' + gmEscape(T.open_case) + ' #' + gmEscape(p.id) + '</a></div>';
    }

    function showIncident(feature, open) {
        var p = feature.properties, c = feature.geometry.coordinates;
        if (shown[p.id]) { incidentsLayer.removeLayer(shown[p.id]); }
        var icon = L.divIcon({className: 'gm-inc-icon' + (p.overdue ? ' gm-overdue' : ''), iconSize: [18, 18],
                              html: '<span style="background:' + colourOf(p.category) + '"></span>'});
        var marker = L.marker([c[1], c[0]], {icon: icon}).bindPopup(popupHtml(p), {maxWidth: 260});
        marker.gmIncidentId = p.id;
        shown[p.id] = marker;
        incidentsLayer.addLayer(marker);
        if (open) { marker.openPopup(); }
        return marker;
    }

    function refresh() {
        if (!navigator.onLine) { return; }
        var bbox = bboxParam();
        if (map.getZoom() >= 12) {
            G.getJSON(cfg.urls.grids + '?bbox=' + bbox).then(function (r) {
                if (r.status === 200) { grids.clearLayers(); grids.addData(r.body); }
            }).catch(function () {});
        } else {
            grids.clearLayers();
        }
        G.getJSON(cfg.urls.incidents + '?page_size=500&status=open&bbox=' + bbox).then(function (r) {
            if (r.status !== 200) { return; }
            r.body.features.forEach(function (f) { if (!shown[f.properties.id]) { showIncident(f, false); } });
        }).catch(function () {});
    }
    map.on('moveend', refresh);
    refresh();

    // --- placing the pin ---------------------------------------------------------------------
    function setPlace(text, bad) {
        var el = $('pin-place');
        el.textContent = text;
        el.className = 'gm-pin-place' + (bad ? ' gm-bad' : ' gm-good');
    }

    /* The registered enterprises of the pin's village, which the report may name (for "三零" per unit). */
    function showUnits(units) {
        var select = $('pin-unit'), kept = select.value;
        select.length = 1;
        units.forEach(function (u) {
            var option = document.createElement('option');
            option.value = String(u.id);
            option.textContent = u.name;
            select.appendChild(option);
        });
        select.value = units.some(function (u) { return String(u.id) === kept; }) ? kept : '';
        $('pin-unit-label').hidden = units.length === 0;
    }

    function describe() {
        if (!pin) { return; }
        var ll = pin.getLatLng();
        if (!navigator.onLine) { setPlace(T.offline_place, false); showUnits([]); return; }
        G.getJSON(cfg.urls.locate + '?lon=' + ll.lng.toFixed(7) + '&lat=' + ll.lat.toFixed(7)).then(function (r) {
            showUnits(r.status === 200 ? r.body.units || [] : []);
            if (r.status !== 200) { setPlace(G.errorText(r.body), true); return; }
            var p = r.body.place;
            if (p && r.body.in_scope) {
                setPlace(T.town + ' ' + p.town.name + ' · ' + T.village + ' ' + p.village.name + ' · ' + T.grid + ' ' + p.grid.name + '（' + p.grid.code + '）', false);
            } else {
                setPlace(r.body.message || T.outside, true);
            }
        }).catch(function () { setPlace(T.offline_place, false); showUnits([]); });
        checkDuplicates();
    }

    function placePin(latlng) {
        if (!pin) {
            pin = L.marker(latlng, {draggable: true, autoPan: true, title: 'pin'}).addTo(map);
            pin.on('dragend', describe);
        } else {
            pin.setLatLng(latlng);
        }
        describe();
    }
    map.on('click', function (e) { placePin(e.latlng); });

    $('pin-locate').addEventListener('click', function () {
        if (!navigator.geolocation) { setPlace(T.no_geolocation, true); return; }
        setPlace(T.locating, false);
        navigator.geolocation.getCurrentPosition(function (pos) {
            var ll = L.latLng(pos.coords.latitude, pos.coords.longitude);
            map.setView(ll, Math.max(map.getZoom(), 16));
            placePin(ll);
        }, function () { setPlace(T.no_geolocation, true); }, {enableHighAccuracy: true, timeout: 15000});
    });

    // --- form --------------------------------------------------------------------------------
    function localNow() {
        var d = new Date();
        return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
    }
    $('pin-occurred').value = localNow();

    $('pin-category').addEventListener('change', function () {
        var sub = $('pin-subcategory');
        while (sub.options.length > 1) { sub.remove(1); }
        var c = categories[this.value];
        (c ? c.subcategories : []).forEach(function (s) {
            var o = document.createElement('option');
            o.value = s.code; o.textContent = s.name_zh;
            sub.appendChild(o);
        });
        checkDuplicates();
    });

    function occurredIso() {
        var v = $('pin-occurred').value;
        return v ? new Date(v).toISOString() : new Date().toISOString();
    }

    function checkDuplicates() {
        var box = $('pin-duplicates'), list = $('pin-duplicate-list');
        var category = $('pin-category').value;
        if (!pin || !category || !navigator.onLine) { box.hidden = true; return; }
        var ll = pin.getLatLng();
        var url = cfg.urls.duplicates + '?category=' + encodeURIComponent(category) + '&lon=' + ll.lng.toFixed(7)
            + '&lat=' + ll.lat.toFixed(7) + '&occurred_at=' + encodeURIComponent(occurredIso());
        G.getJSON(url).then(function (r) {
            list.textContent = '';
            var found = (r.status === 200 && r.body.possible_duplicates) || [];
            found.forEach(function (d) {
                var li = document.createElement('li');
                li.appendChild(document.createTextNode('#' + d.id + ' ' + d.status_zh + ' · ' + when(d.occurred_at)
                    + ' · ' + Math.round(d.distance_m) + T.metres + ' · ' + d.description + ' '));
                var a = document.createElement('a');
                a.href = cfg.urls['case'].replace('__ID__', encodeURIComponent(d.id));
                a.className = 'gm-same-case';
                a.textContent = T.same_case;
                li.appendChild(a);
                list.appendChild(li);
            });
            box.hidden = found.length === 0;
        }).catch(function () { box.hidden = true; });
    }
    $('pin-occurred').addEventListener('change', checkDuplicates);

    function message(kind, text) {
        $('pin-error').hidden = kind !== 'error';
        $('pin-ok').hidden = kind !== 'ok';
        $(kind === 'error' ? 'pin-error' : 'pin-ok').textContent = text;
    }

    // --- the offline queue -------------------------------------------------------------------
    function loadQueue() {
        try { return JSON.parse(localStorage.getItem(QUEUE_KEY) || '{}') || {}; } catch (e) { return {}; }
    }
    function saveQueue(q) { localStorage.setItem(QUEUE_KEY, JSON.stringify(q)); renderQueue(); }
    function enqueue(payload) { var q = loadQueue(); q[payload.client_id] = payload; saveQueue(q); }
    function dequeue(id) { var q = loadQueue(); delete q[id]; saveQueue(q); }

    function renderQueue() {
        var q = loadQueue(), ids = Object.keys(q);
        $('pin-queue').hidden = ids.length === 0;
        $('pin-queue-count').textContent = String(ids.length);
        var list = $('pin-queue-list');
        list.textContent = '';
        ids.forEach(function (id) {
            var p = q[id], li = document.createElement('li');
            li.dataset.clientId = id;
            li.appendChild(document.createTextNode(((categories[p.category] || {}).name_zh || p.category) + ' · '
                + when(p.occurred_at) + ' · ' + (p.description || '').slice(0, 30) + ' '));
            var del = document.createElement('button');
            del.type = 'button'; del.textContent = T.remove;
            del.addEventListener('click', function () { dequeue(id); });
            li.appendChild(del);
            list.appendChild(li);
        });
    }

    /* A page opened offline is the copy kept by the service worker: its CSRF token may belong to an
       earlier session. Fetch the page afresh and take its token; false when the login has ended. */
    function refreshToken() {
        var scope = G.readJSON('pin-offline').scope || window.location.pathname;
        return fetch(scope, {credentials: 'same-origin', cache: 'no-store'}).then(function (r) {
            if (!r.ok || r.redirected) { return false; }
            return r.text().then(function (html) {
                var fresh = new DOMParser().parseFromString(html, 'text/html').querySelector('meta[name=csrf-token]');
                var meta = document.querySelector('meta[name=csrf-token]');
                if (!fresh || !meta) { return false; }
                meta.setAttribute('content', fresh.getAttribute('content'));
                return true;
            });
        }).catch(function () { return false; });
    }

    /* Send one pin; resolves to 'sent', 'kept' (try again later) or 'refused'. */
    function send(payload, retried) {
        return G.sendJSON(cfg.urls.create, 'POST', payload).then(function (r) {
            if (!retried && r.body.error && r.body.error.code === 'csrf') {
                return refreshToken().then(function (ok) {
                    if (ok) { return send(payload, true); }
                    message('error', T.login_again);
                    return 'kept';
                });
            }
            if (r.status === 201 || r.status === 200) {
                dequeue(payload.client_id);
                showIncident(r.body, true);
                message('ok', (r.status === 201 ? T.saved : T.already) + ' #' + r.body.properties.id);
                return 'sent';
            }
            if (r.status === 401 || (r.body.error && r.body.error.code === 'csrf')) {
                message('error', T.login_again);
                return 'kept';
            }
            if (r.status >= 500) { return 'kept'; }
            dequeue(payload.client_id);
            message('error', G.errorText(r.body));
            return 'refused';
        }, function () { return 'kept'; });
    }

    var flushing = false;
    function flush() {
        if (flushing || !navigator.onLine) { return Promise.resolve(); }
        var q = loadQueue(), ids = Object.keys(q);
        if (!ids.length) { return Promise.resolve(); }
        flushing = true;
        return ids.reduce(function (chain, id) {
            return chain.then(function () { return send(q[id]); });
        }, Promise.resolve()).then(function () { flushing = false; refresh(); }, function () { flushing = false; });
    }
    window.addEventListener('online', flush);
    $('pin-queue-send').addEventListener('click', flush);
    setInterval(flush, 30000);

    form.addEventListener('submit', function (e) {
        e.preventDefault();
        if (!pin) { message('error', T.need_pin); return; }
        if (!$('pin-category').value) { message('error', T.need_category); return; }
        var ll = pin.getLatLng();
        var payload = {
            client_id: G.uuid4(), lon: Number(ll.lng.toFixed(7)), lat: Number(ll.lat.toFixed(7)), crs: 'wgs84',
            category: $('pin-category').value, subcategory: $('pin-subcategory').value || null,
            severity: parseInt($('pin-severity').value, 10), occurred_at: occurredIso(),
            description: $('pin-description').value, enterprise_involved: $('pin-enterprise').checked,
            contact_phone: $('pin-phone').value || null,
            unit_id: $('pin-unit').value ? parseInt($('pin-unit').value, 10) : null
        };
        enqueue(payload);
        var done = function (outcome) {
            if (outcome === 'sent' || outcome === 'kept') { showUnits([]); }
            if (outcome === 'sent') {
                form.reset();
                $('pin-occurred').value = localNow();
                $('pin-subcategory').length = 1;
                $('pin-duplicates').hidden = true;
                map.removeLayer(pin);
                pin = null;
            } else if (outcome === 'kept') {
                message('ok', T.queued);
                form.reset();
                $('pin-occurred').value = localNow();
                map.removeLayer(pin);
                pin = null;
            }
        };
        if (!navigator.onLine) { done('kept'); return; }
        send(payload).then(done);
    });

    // --- offline start ------------------------------------------------------------------------
    // Service workers need a secure context (https, or localhost); elsewhere the page still queues.
    var offline = G.readJSON('pin-offline');
    if (offline.worker && 'serviceWorker' in navigator) {
        navigator.serviceWorker.register(offline.worker, {scope: offline.scope}).catch(function (e) {
            console.warn('gridmap: the pin page will not open offline:', e);
        });
        // Logging out forgets the kept page, so the next person on this phone does not see it.
        Array.prototype.forEach.call(document.querySelectorAll('form[action$="/logout"]'), function (f) {
            f.addEventListener('submit', function (e) {
                if (!window.caches) { return; }
                e.preventDefault();
                caches.keys().then(function (names) {
                    return Promise.all(names.filter(function (n) { return n.indexOf('gridmap-pin-') === 0; })
                        .map(function (n) { return caches.open(n).then(function (c) { return c.delete(offline.scope); }); }));
                }).catch(function () {}).then(function () { f.submit(); });
            });
        });
    }

    renderQueue();
    flush();
})();
