# Built by scripts/build-native.mjs (npm postinstall) into bgp/native/build/Release/skein_native.node.
{
  "targets": [
    {
      "target_name": "skein_native",
      "sources": ["skein_native.c", "announce_watch.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
