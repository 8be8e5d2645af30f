bind "unix://#{ENV.fetch("S") { "/tmp" }}/s.sock?umask=0111"
workers -7 % 3
max_headers 0777
lowlevel_error_handler { |e| [500, {}, ["#{e}"]] }
