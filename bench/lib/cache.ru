# Puma's side of bench/memory: the Rack counterpart of testapp.so's /cache.
#
#   /cache  on first use in a process builds a read-only cache of about CACHE_MB MB
#           (default 150) and answers its checksum, with the answering process's pid
#           in an x-pid header. The cache is what a real app
#           loads lazily (a Rails app's reference data, a parsed config, a lookup
#           table): an Array of many short Strings, built with the temporary objects
#           such code makes, so it lives in the Ruby heap (object slots + malloc'd
#           string buffers) interleaved with garbage, the way a real app's data does.
#           Each request reads a few random entries, as a request using the cache
#           would.
#   /pid    JSON {"pid":..,"worker":INDEX,"cache":true|false}: which worker answers
#           and whether its cache is built (INDEX from Puma's process title).
#   /       "Hello World".
#
# Every build logs one line to stderr: "cache.ru: cache built (N entries, pid P, T s)",
# so bench/memory can check that a forked worker did not build it again.

CACHE_MB = Integer(ENV.fetch("CACHE_MB", "150"))
# Measured with ruby 3.1: 1M entries of ~101 bytes take ~180 MB of RSS (40-byte slot,
# a malloc'd buffer, allocator and heap overhead).
ENTRY_FOOTPRINT = 180
CACHE_ENTRIES = CACHE_MB * 1_000_000 / ENTRY_FOOTPRINT

$cache = nil
$cache_sum = 0
$cache_lock = Mutex.new

def build_cache
  t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  cache = Array.new(CACHE_ENTRIES) do |i|
    "#{i.to_s.rjust(10, '0')}:#{'v' * 80}:#{(i * 2654435761) & 0xffffffff}"
  end
  sum = 0
  cache.each { |s| sum = (sum * 31 + s.getbyte(s.bytesize - 1)) & 0xffffffffffffffff }
  $cache_sum = sum
  $cache = cache.freeze
  $stderr.puts format("cache.ru: cache built (%d entries, pid %d, %.2f s)", CACHE_ENTRIES,
                      Process.pid, Process.clock_gettime(Process::CLOCK_MONOTONIC) - t)
end

def cache
  $cache || $cache_lock.synchronize { $cache || build_cache }
  $cache
end

def worker_index
  $0[/worker (\d+)/, 1]&.to_i
end

TEXT = { "content-type" => "text/plain" }.freeze
JSON_TYPE = { "content-type" => "application/json" }.freeze

run lambda { |env|
  case env["PATH_INFO"]
  when "/cache"
    c = cache
    probe = 0
    4.times { probe ^= c[rand(c.size)].hash }
    [200, { "content-type" => "text/plain", "x-pid" => Process.pid.to_s }, ["#{$cache_sum}\n"]]
  when "/pid"
    [200, JSON_TYPE,
     [%({"pid":#{Process.pid},"worker":#{worker_index.inspect.sub('nil', 'null')},"cache":#{!$cache.nil?}})]]
  else
    [200, TEXT, ["Hello World"]]
  end
}
