-- `thinkific sign [FILE]` and `thinkific verify [FILE] --signature HEX`: the HMAC-SHA256 of
-- the exact bytes of a file or of stdin with THINKIFIC_WEBHOOK_SECRET, as thinkific.sign.
-- The command is Lua 5.4 whatever runs the specs (#lua54: one run is enough).
local helper = require("spec.helper")
local thinkific = require("thinkific")

local SECRET = "cli-sign-secret-5529"

describe("thinkific sign and verify #lua54", function()
  local dir
  helper.scratch_dir(function(d) dir = d end)

  local run = helper.cli({ THINKIFIC_WEBHOOK_SECRET = SECRET }, { SECRET })

  local BODY = '{"id":"20180126172320940835610","payload":{"x":1}}'

  it("signs a file or stdin: the hex HMAC of the exact bytes", function()
    local file = helper.write(dir, "body.json", BODY)
    local want = thinkific.sign(BODY, SECRET)
    assert.matches("^%x+$", want)
    local code, out, err = run({ "sign", file })
    assert.are.equal(0, code)
    assert.are.equal(want .. "\n", out)
    assert.are.equal("", err)
    code, out = run({ "sign" }, nil, file)
    assert.are.equal(0, code)
    assert.are.equal(want .. "\n", out)
    code, out = run({ "sign", "-" }, nil, file)
    assert.are.equal(0, code)
    assert.are.equal(want .. "\n", out)
    code, out = run({ "sign", "--json", file })
    assert.are.equal(0, code)
    assert.are.same({ signature = want }, assert(thinkific.decode(out)))

    -- Bytes as they are: CRLF, NUL, no final newline; and an empty body.
    local raw = "{\"a\":1}\r\n\0\255"
    code, out = run({ "sign", helper.write(dir, "raw.bin", raw) })
    assert.are.equal(0, code)
    assert.are.equal(thinkific.sign(raw, SECRET) .. "\n", out)
    code, out = run({ "sign" })
    assert.are.equal(0, code)
    assert.are.equal(thinkific.sign("", SECRET) .. "\n", out)
    -- Another secret, another signature.
    code, out = run({ "sign", file }, { THINKIFIC_WEBHOOK_SECRET = "another-secret" })
    assert.are.equal(0, code)
    assert.are.equal(thinkific.sign(BODY, "another-secret") .. "\n", out)
    assert.are_not.equal(want .. "\n", out)
  end)

  it("verifies: exit 0 and 'valid' for the signature, in either case, file or stdin", function()
    local file = helper.write(dir, "body.json", BODY)
    local sig = thinkific.sign(BODY, SECRET)
    for _, case in ipairs({
      { { "verify", file, "--signature", sig } },
      { { "verify", "--signature", sig:upper() }, file },
      { { "verify", "--signature", sig, "-" }, file },
    }) do
      local code, out = run(case[1], nil, case[2])
      assert.are.equal(0, code, table.concat(case[1], " "))
      assert.are.equal("valid\n", out)
    end
    local code, out = run({ "verify", "--json", file, "--signature", sig })
    assert.are.equal(0, code)
    assert.are.same({ valid = true }, assert(thinkific.decode(out)))
  end)

  it("refuses: exit 1 and 'invalid' for a wrong signature, bad hex, another secret or body", function()
    local file = helper.write(dir, "body.json", BODY)
    local sig = thinkific.sign(BODY, SECRET)
    local flipped = (sig:sub(1, 1) == "0" and "1" or "0") .. sig:sub(2)
    for _, case in ipairs({
      { "verify", file, "--signature", flipped },
      { "verify", file, "--signature", sig:sub(1, -3) },
      { "verify", file, "--signature", sig .. "00" },
      { "verify", file, "--signature", ("zz"):rep(32) },
      { "verify", file, "--signature", "" },
      { "verify", "--signature", sig, helper.write(dir, "other.json", BODY .. " ") },
    }) do
      local code, out, err = run(case)
      assert.are.equal(1, code, table.concat(case, " "))
      assert.are.equal("invalid\n", out)
      assert.are.equal("", err)
    end
    local code, out = run({ "verify", file, "--signature", sig },
      { THINKIFIC_WEBHOOK_SECRET = "another-secret" })
    assert.are.equal(1, code)
    assert.are.equal("invalid\n", out)
    code, out = run({ "verify", "--json", file, "--signature", flipped })
    assert.are.equal(1, code)
    assert.are.same({ valid = false }, assert(thinkific.decode(out)))
  end)

  it("exits 1 with one line when the file cannot be read", function()
    for _, argv in ipairs({ { "sign", dir .. "/missing.json" },
      { "verify", dir .. "/missing.json", "--signature", "00" } }) do
      local code, out, err = run(argv)
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.matches("^thinkific " .. argv[1] .. ": [^\n]*missing%.json[^\n]*\n$", err)
    end
  end)
end)
