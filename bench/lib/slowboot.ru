# A slow-booting Rack app for bench/restart: loading it takes 2 s (like
# examples/testapp.so with TESTAPP_BOOT_MS=2000), then it answers like hello.ru.
# Puma evaluates this file in every worker it boots from the master (no
# preload_app!), so each such worker boot takes 2 s; fork_worker forks of worker 0
# inherit the loaded app and skip it.
sleep Float(ENV.fetch("SLOWBOOT_SECONDS", "2"))
run ->(_env) { [200, { "content-type" => "text/plain" }, ["Hello World"]] }
