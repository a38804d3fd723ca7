-- A plain GET of the URL's path (`jwks`, the constant-JSON ceiling), the same request every time;
-- expects 200.
dofile("/bench/wrk/common.lua")
