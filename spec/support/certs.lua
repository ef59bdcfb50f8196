-- Test certificates, made with the openssl command in a spec's directory: a
-- CA, and certificates it issues for the names a spec needs (ECDSA P-256 or
-- RSA 2048), expired or about to expire on demand.
--
--   local certs = require("spec.support.certs").new(dir)
--   local c = certs:issue("api", { "api.example.test" }, { key = "rsa", days = 3 })
--   c.cert, c.key  -- PEM files: the certificate followed by the CA, its key
--   local sub = certs:intermediate("sub")   -- a CA under the root: what it
--   sub:issue(...)                           -- issues carries it, not the root
--   certs.ca                                 -- the root, for a client's cafile
local proc = require("spec.support.proc")

local format, concat = string.format, table.concat
local q = proc.quote

local _M = {}
local mt = {}
mt.__index = mt

local function run(cmd)
  local code, out = proc.sh(cmd)
  assert(code == 0, "openssl failed: " .. cmd .. "\n" .. out)
  return out
end

local function keygen(path, kind)
  if kind == "rsa" or kind == "rsa1024" then -- rsa1024: too weak for OpenSSL's security level 2
    run(format("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:%d -out %s", kind == "rsa" and 2048 or 1024,
      q(path)))
  else
    run(format("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s", q(path)))
  end
end

function _M.new(dir)
  local self = setmetatable({ dir = dir, serial = 1 }, mt)
  self.ca_key, self.ca = dir .. "/ca.key", dir .. "/ca.pem"
  keygen(self.ca_key, "ec")
  run(format("openssl req -x509 -new -key %s -out %s -days 30 -subj '/CN=corsgate spec CA' "
    .. "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign", q(self.ca_key), q(self.ca)))
  self.root, self.chain = self.ca, proc.read_file(self.ca)
  return self
end

-- An intermediate CA signed by this one: certificates it issues are followed
-- in their file by the intermediate (and not the root), as a public CA's are.
function mt:intermediate(name, opts)
  opts = opts or {}
  local base = self.dir .. "/" .. name
  keygen(base .. ".key", "ec")
  run(format("openssl req -new -key %s -out %s -subj %s", q(base .. ".key"), q(base .. ".csr"),
    q("/CN=corsgate spec " .. name)))
  proc.write_file(base .. ".ext", "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
  self.serial = self.serial + 1
  run(format("openssl x509 -req -in %s -CA %s -CAkey %s -set_serial %d -days %d -extfile %s -out %s",
    q(base .. ".csr"), q(self.ca), q(self.ca_key), self.serial, opts.days or 30, q(base .. ".ext"), q(base .. ".crt")))
  local sub = setmetatable({ dir = self.dir, serial = self.serial * 100, ca_key = base .. ".key", ca = base .. ".crt",
    root = self.root }, mt)
  sub.chain = proc.read_file(sub.ca)
  return sub
end

-- A certificate for names (subjectAltName DNS entries, or "IP:10.0.0.1"; {}
-- for none).
-- opts.key "ec" (default), "rsa" or "rsa1024"; opts.days (default 30); opts.expired: its
-- validity ended in 2020; opts.chain false: the certificate alone, without
-- the CA after it; opts.reversed: the CA first (a chain out of order);
-- opts.damaged: a broken PEM block between the certificate and the CA.
function mt:issue(name, names, opts)
  opts = opts or {}
  local base = self.dir .. "/" .. name
  local key, csr, crt, ext = base .. ".key", base .. ".csr", base .. ".crt", base .. ".ext"
  keygen(key, opts.key)
  run(format("openssl req -new -key %s -out %s -subj %s", q(key), q(csr), q("/CN=" .. (names[1] or name))))
  local sans = {}
  for _, n in ipairs(names) do sans[#sans + 1] = n:match("^IP:") and n or ("DNS:" .. n) end
  proc.write_file(ext, #sans > 0 and ("subjectAltName=" .. concat(sans, ",") .. "\n") or "basicConstraints=CA:FALSE\n")
  self.serial = self.serial + 1
  if opts.expired then
    -- openssl x509 takes no past dates: openssl ca does, with a database of its own
    local cadir = base .. ".ca"
    run(format("mkdir -p %s/new && : > %s/index.txt && echo %02X > %s/serial", q(cadir), q(cadir), self.serial, q(cadir)))
    proc.write_file(cadir .. "/ca.cnf", table.concat({
      "[ca]", "default_ca = spec", "[spec]", "dir = " .. cadir, "database = $dir/index.txt",
      "new_certs_dir = $dir/new", "serial = $dir/serial", "default_md = sha256", "policy = any",
      "unique_subject = no", "[any]", "commonName = supplied", "" }, "\n"))
    run(format("openssl ca -batch -config %s -cert %s -keyfile %s -in %s -out %s -extfile %s -notext "
      .. "-startdate 20200101000000Z -enddate 20200201000000Z", q(cadir .. "/ca.cnf"), q(self.ca), q(self.ca_key),
      q(csr), q(crt), q(ext)))
  else
    run(format("openssl x509 -req -in %s -CA %s -CAkey %s -set_serial %d -days %d -extfile %s -out %s", q(csr),
      q(self.ca), q(self.ca_key), self.serial, opts.days or 30, q(ext), q(crt)))
  end
  local pem = base .. ".pem"
  local leaf, ca = proc.read_file(crt), self.chain
  if opts.chain == false then proc.write_file(pem, leaf)
  elseif opts.reversed then proc.write_file(pem, ca .. leaf)
  elseif opts.damaged then
    proc.write_file(pem, leaf .. "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n" .. ca)
  else proc.write_file(pem, leaf .. ca) end
  return { cert = pem, key = key }
end

-- The SHA-256 fingerprint of a PEM file's first certificate, as lua-sec's
-- cert:digest("sha256") gives it (lower-case hex, no colons).
function _M.fingerprint(pem)
  local out = run(format("openssl x509 -in %s -noout -fingerprint -sha256", q(pem)))
  return (out:match("=([%x:]+)") or ""):gsub(":", ""):lower()
end

return _M
