-- The part of WirePlumber 0.4's default policy that links nodes.
components = {}
local function load_module(m, a)
  components[#components + 1] = { "libwireplumber-module-" .. m, type = "module", args = a }
end
local function load_script(s, a)
  components[#components + 1] = { s, type = "script/lua", args = a }
end
local policy = {
  ["move"] = true,
  ["follow"] = true,
  ["filter.forward-format"] = false,
  ["audio.no-dsp"] = false,
  ["duck.level"] = 0.3,
}
load_module("si-node")
load_module("si-audio-adapter")
load_module("si-standard-link")
load_module("si-audio-endpoint")
load_module("default-nodes-api")
load_module("default-nodes", { ["use-persistent-storage"] = false })
load_script("create-item.lua", policy)
load_script("policy-node.lua", policy)
