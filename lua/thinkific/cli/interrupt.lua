-- Serving until Ctrl-C, for the commands that serve (`thinkific sandbox`, `thinkific listen`).
-- Lua 5.4's standalone interpreter turns SIGINT into the error "interrupted!", raised in the
-- main thread at its next Lua instruction (when the loop's select returns, within a round);
-- here that error becomes the shell's status for SIGINT, 130, with no stack trace, after the
-- server closed its listening socket and connections.
local _M = {}

_M.STATUS = 130 -- 128 + SIGINT

-- Is err the interpreter's error for SIGINT? ("file:line: interrupted!", or without position)
function _M.is_interrupt(err)
  return type(err) == "string" and err:find("interrupted!$") ~= nil
end

-- Runs server:run() until server:stop() or Ctrl-C, then closes the server. Returns 0 after a
-- stop, _M.STATUS after Ctrl-C, or nil and the error run raised.
function _M.serve(server)
  local ok, err = pcall(server.run, server)
  server:close()
  if ok then return 0 end
  if _M.is_interrupt(err) then return _M.STATUS end
  return nil, err
end

return _M
