-- wrk script for bench/http_api.sh: POST /v1/jobs, target "bench", with a
-- distinct 256-byte source each time (so every submit stores a new
-- artifact, as load_bench does).  The source is a fixed 240-byte part
-- (base64 computed once; 240 is a multiple of 3, so the encodings simply
-- concatenate) and a 16-byte counter encoded per request.
local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = b64:sub(c1 + 1, c1 + 1) .. b64:sub(c2 + 1, c2 + 1) ..
        (b and b64:sub(c3 + 1, c3 + 1) or "=") .. (c and b64:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

local fixed = string.format("/* wrk %d */", os.time())
fixed = base64(fixed .. string.rep("x", 240 - #fixed))
local counter = 0
-- The admin token bench_token exported (none: a build before authentication).
local headers = {["Content-Type"] = "application/json"}
if os.getenv("INGOT_TOKEN") then headers["Authorization"] = "Bearer " .. os.getenv("INGOT_TOKEN") end

request = function()
  counter = counter + 1
  local body = '{"target":"bench","sources":[{"path":"s.c","data":"' .. fixed ..
      base64(string.format("%015d\n", counter)) .. '"}]}'
  return wrk.format("POST", "/v1/jobs", headers, body)
end
