-- A 64 KB request body on every request.
wrk.body = string.rep("x", 65536)
