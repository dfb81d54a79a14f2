-- wrk: a CORS preflight, which Wisp answers itself (204) without running the function.
wrk.method = "OPTIONS"
wrk.headers["Origin"] = "http://example.com"
wrk.headers["Access-Control-Request-Method"] = "GET"
