-- The library's version, in one place (the facade, the user agent and the rockspec agree).
return "0.1.0"
