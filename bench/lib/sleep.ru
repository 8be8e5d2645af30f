# The Rack equivalent of the testapp.so routes bench/capacity uses: "/" answers
# "Hello World" at once, "/sleep?ms=N" waits N ms first (a slow app: a database call).
run lambda { |env|
  if env["PATH_INFO"] == "/sleep"
    ms = env["QUERY_STRING"].to_s[/(?:^|&)ms=(\d+)/, 1].to_i
    sleep(ms / 1000.0)
    [200, { "content-type" => "text/plain" }, ["slept #{ms}"]]
  else
    [200, { "content-type" => "text/plain" }, ["Hello World"]]
  end
}
