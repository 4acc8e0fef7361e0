-- Does a server's certificate name the host a client asked for? The rules of RFC 6125 as
-- libcurl applies them, so that `thinkific deliver` and the library's client agree:
--   * an IP literal matches a subjectAltName iPAddress of the same address (compared as
--     bytes: "::1" and "0:0::1" are one address); never a dNSName, never a wildcard;
--   * a host name matches a subjectAltName dNSName, case-insensitively, a trailing dot
--     ignored; "*" is allowed only as the whole leftmost label and stands for exactly one
--     non-empty label ("*.example.com" names "a.example.com", neither "example.com" nor
--     "a.b.example.com"), and never for a label right under a top-level name ("*.com");
--   * the subject's (last) commonName is read, by the same rules, only when the certificate
--     has no dNSName and no iPAddress at all.
-- Pure functions over plain strings; names() reads them from a LuaSec certificate.
local M = {}

local byte, char, concat = string.byte, string.char, table.concat

local SAN = "2.5.29.17"
local COMMON_NAME = "2.5.4.3"

-- "a.b.c.d" (decimal, no leading zeros) -> 4 bytes, or nil.
local function ipv4(s)
  local parts = { s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
  if #parts ~= 4 then return nil end
  local out = {}
  for i, p in ipairs(parts) do
    local n = tonumber(p)
    if #p > 3 or n > 255 or (#p > 1 and p:sub(1, 1) == "0") then return nil end
    out[i] = char(n)
  end
  return concat(out)
end

-- Appends the 16-bit groups of "x:y:z" (text between "::", or the whole address) to groups;
-- the last item may be a dotted IPv4 address when v4_last. Returns true, or nil when invalid.
local function add_groups(text, groups, v4_last)
  if text == "" then return true end
  local items = {}
  for item in (text .. ":"):gmatch("([^:]*):") do items[#items + 1] = item end
  for i, item in ipairs(items) do
    if item:find("^%x%x?%x?%x?$") then
      groups[#groups + 1] = tonumber(item, 16)
    elseif i == #items and v4_last and item:find(".", 1, true) then
      local b = ipv4(item)
      if not b then return nil end
      groups[#groups + 1] = byte(b, 1) * 256 + byte(b, 2)
      groups[#groups + 1] = byte(b, 3) * 256 + byte(b, 4)
    else
      return nil
    end
  end
  return true
end

-- An IPv6 address in text (with "::" and a trailing IPv4 part allowed) -> 16 bytes, or nil.
local function ipv6(s)
  if not s:find(":", 1, true) or s:find("[^%x:.]") then return nil end
  local head, tail = s:match("^(.-)::(.*)$")
  local before, after = {}, {}
  if head then
    if tail:find("::", 1, true) then return nil end
    if not add_groups(head, before, false) or not add_groups(tail, after, true) then return nil end
    if #before + #after > 7 then return nil end
  else
    if not add_groups(s, before, true) or #before ~= 8 then return nil end
  end
  local groups = before
  for _ = 1, 8 - #before - #after do groups[#groups + 1] = 0 end
  for _, g in ipairs(after) do groups[#groups + 1] = g end
  local out = {}
  for i, g in ipairs(groups) do out[i] = char(math.floor(g / 256), g % 256) end
  return concat(out)
end

-- The bytes of an IP literal (IPv4: 4, IPv6: 16; IPv6 may come in brackets), or nil when s is
-- not one.
function M.ip_bytes(s)
  if type(s) ~= "string" then return nil end
  s = s:match("^%[(.*)%]$") or s
  return ipv4(s) or ipv6(s)
end

-- A host name as compared: lower case, without a trailing dot; nil when it holds anything but
-- letters, digits, '-', '_' and '.' (a NUL, a '*', a space, an empty label...).
local function dns_name(s)
  if type(s) ~= "string" then return nil end
  s = s:lower():gsub("%.$", "")
  if s == "" or s:find("[^%w%-_.]") or s:find("..", 1, true) or s:sub(1, 1) == "." then
    return nil
  end
  return s
end

-- Does the presented name (from the certificate) match the host name (already through
-- dns_name)?
local function dns_match(presented, host)
  if type(presented) ~= "string" then return false end
  local rest = presented:match("^%*(%..*)$")
  if not rest then return dns_name(presented) == host end
  -- "*" as the whole leftmost label, above at least two more labels.
  rest = dns_name(rest:sub(2))
  if not rest or not rest:find(".", 1, true) then return false end
  local first, host_rest = host:match("^([^.]+)%.(.+)$")
  return first ~= nil and host_rest == rest
end

local function list(v)
  if type(v) == "table" then return v end
  if type(v) == "string" then return { v } end
  return {}
end

-- The names a certificate presents: { dns = {…}, ip = {…}, cn = {…} }, from a LuaSec
-- certificate (conn:getpeercertificate(), ssl.loadcertificate(pem)).
function M.names(cert)
  local names = { dns = {}, ip = {}, cn = {} }
  local ok, extensions = pcall(cert.extensions, cert)
  local san = ok and type(extensions) == "table" and extensions[SAN]
  if type(san) == "table" then
    for _, v in ipairs(list(san.dNSName)) do names.dns[#names.dns + 1] = v end
    for _, v in ipairs(list(san.iPAddress)) do names.ip[#names.ip + 1] = v end
  end
  local sok, subject = pcall(cert.subject, cert)
  if sok and type(subject) == "table" then
    for _, entry in ipairs(subject) do
      if type(entry) == "table" and entry.oid == COMMON_NAME and type(entry.value) == "string" then
        names.cn[#names.cn + 1] = entry.value
      end
    end
  end
  return names
end

-- A short, printable list of the names, for error messages.
local function shown(names)
  local all = {}
  for _, kind in ipairs({ "dns", "ip" }) do
    for _, v in ipairs(names[kind] or {}) do all[#all + 1] = v end
  end
  if #all == 0 and names.cn and #names.cn > 0 then all[1] = names.cn[#names.cn] end
  if #all == 0 then return "no name" end
  local more = #all > 4 and string.format(" and %d more", #all - 4) or ""
  for i = 5, #all do all[i] = nil end
  for i, v in ipairs(all) do all[i] = (tostring(v):gsub("[^%w%-_.:*]", "?")) end
  return concat(all, ", ") .. more
end

-- host: the host of the URL (an IP literal, or a name); names: as names() returns. Returns
-- true, or false and a message such as "the certificate names example.com, not localhost".
function M.check(host, names)
  local dns, ips, cns = names.dns or {}, names.ip or {}, names.cn or {}
  local has_san = #dns > 0 or #ips > 0
  local ip = M.ip_bytes(host)
  if ip then
    for _, v in ipairs(ips) do
      if M.ip_bytes(v) == ip then return true end
    end
    if not has_san and #cns > 0 and M.ip_bytes(cns[#cns]) == ip then return true end
  else
    local want = dns_name(host)
    if want then
      for _, v in ipairs(dns) do
        if dns_match(v, want) then return true end
      end
      if not has_san and #cns > 0 and dns_match(cns[#cns], want) then return true end
    end
  end
  local printable = tostring(host):gsub("[^%w%-_.:%[%]]", "?")
  return false, string.format("the certificate names %s, not %s", shown(names), printable)
end

return M
