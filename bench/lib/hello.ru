# The Rack equivalent of serval's examples/hello.so: the same 11-byte body for every
# request, nothing else (no middleware; puma runs it with -e production).
run ->(_env) { [200, { "content-type" => "text/plain" }, ["Hello World"]] }
