-- ngx_lua's API for the functions of thinkific.ngx, or a clear error where there is none: the
-- modules load outside nginx (for docs and tooling) and raise only when called there.
local type, rawget, error = type, rawget, error

-- need(fname) -> ngx; raises at the caller of thinkific.ngx.<fname> outside nginx.
return function(fname)
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.req) ~= "table" then
    error(("thinkific.ngx.%s needs OpenResty (nginx with ngx_lua): it was called outside nginx")
      :format(fname), 3)
  end
  return ngx
end
