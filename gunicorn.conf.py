"""gunicorn settings of `gridmap serve` (and scripts/serve.sh). gunicorn reads this file itself
because `gridmap serve` starts it with --chdir here; the benchmarks start it the same way.

gthread workers keep a client's connection open between requests (HTTP keep-alive), as browsers
fetching tiles and phones reporting incidents do, so a request costs no new TCP connection; with
two threads a worker runs one request's Python while another waits on the database. The number
of workers comes from `gridmap serve --workers` (2).
"""
worker_class = "gthread"
threads = 2
# Seconds an idle keep-alive connection stays open: a map's burst of tiles, a reporter's next pin.
keepalive = 5
# The C HTTP parser (gunicorn_h1c, picohttpparser): a third less worker CPU a request than the
# pure-Python parser (bench/bench_api.py). Required, so a missing build fails at start.
http_parser = "fast"
