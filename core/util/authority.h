#ifndef CG_UTIL_AUTHORITY_H
#define CG_UTIL_AUTHORITY_H
/* The authority of a request: a Host header's value, or what an absolute-form
 * target names (RFC 9112 3.2, RFC 3986 3.2): uri-host [ ":" port ]. Every
 * request head is checked with it (and HTTP/2's :authority will be), so a host
 * the router sees and the upstream gets is always one of these shapes. */
#include <stddef.h>

/* Checks v: an IP literal in brackets (IPv6, or IPvFuture) or a reg-name (unreserved,
 * percent-encoded, sub-delims; empty allowed, as RFC 9112 allows an empty
 * Host), then optionally ':' and a port of at most 65535 (empty allowed).
 * Returns the length of the host part (brackets kept, port cut), or -1:
 * userinfo, a port that is not a number, spaces or control bytes. */
int cg_authority_parse(const char *v, size_t n);

#endif
