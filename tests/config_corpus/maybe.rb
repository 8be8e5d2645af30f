# Source: maybe-finance/maybe, config/puma.rb (commit 0f206070a15317a002b90f85a19cca16eea4d93a).
# Licence: AGPL-3.0. Rewritten faithfully for serval's tests: every statement is as in the
# original, in the same order; the comments are ours (the file is Rails' template with
# Solid Queue's plugin line).
threads_count = ENV.fetch("RAILS_MAX_THREADS", 3)
threads threads_count, threads_count

case ENV.fetch("RAILS_ENV", "development")
when "production"
  # one worker per CPU, from WEB_CONCURRENCY
  workers_count = Integer(ENV.fetch("WEB_CONCURRENCY") { 1 })
  workers workers_count if workers_count > 1

  preload_app!
when "development"
  # generous, for debuggers
  worker_timeout 3600
end

# the port, 3000 unless PORT says otherwise
port ENV.fetch("PORT", 3000)

# bin/rails restart
plugin :tmp_restart

# Solid Queue inside Puma, when asked for
plugin :solid_queue if ENV["SOLID_QUEUE_IN_PUMA"]

# a pidfile only when asked for
pidfile ENV["PIDFILE"] if ENV["PIDFILE"]
