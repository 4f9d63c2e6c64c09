/* Case page: each allowed action is a small form posted as JSON to the transitions API. */
(function () {
    'use strict';
    var G = window.gmIncidents;
    var cfg = G.readJSON('case-config');
    var errorBox = document.getElementById('case-error');

    Array.prototype.forEach.call(document.querySelectorAll('form.gm-action'), function (form) {
        var kind = form.elements.target_kind, target = form.elements.target;
        function filterTargets() {
            var first = null;
            Array.prototype.forEach.call(target.options, function (o) {
                var match = o.dataset.kind === kind.value;
                o.hidden = !match;
                o.disabled = !match;
                if (match && first === null) { first = o; }
            });
            if (first && (target.selectedOptions.length === 0 || target.selectedOptions[0].disabled)) { first.selected = true; }
        }
        if (kind && target) { kind.addEventListener('change', filterTargets); filterTargets(); }

        form.addEventListener('submit', function (e) {
            e.preventDefault();
            var payload = {action: form.dataset.action};
            Array.prototype.forEach.call(form.elements, function (el) {
                if (!el.name || el.type === 'submit' || el.disabled) { return; }
                if (el.value !== '') { payload[el.name] = el.value; }
            });
            if (form.elements.unit_id && payload.unit_id === undefined) { payload.unit_id = null; }  // clear it
            ['satisfaction', 'duplicate_of', 'unit_id'].forEach(function (k) {
                if (payload[k] !== undefined && /^\d+$/.test(payload[k])) { payload[k] = parseInt(payload[k], 10); }
            });
            var button = form.querySelector('button[type=submit]');
            button.disabled = true;
            G.sendJSON(cfg.transition_url, 'POST', payload).then(function (r) {
                if (r.status === 200) { window.location.reload(); return; }
                errorBox.hidden = false;
                errorBox.textContent = G.errorText(r.body);
                button.disabled = false;
            }, function () {
                errorBox.hidden = false;
                errorBox.textContent = 'network error';
                button.disabled = false;
            });
        });
    });
})();
