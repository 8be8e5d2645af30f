#!/usr/bin/env puma
# frozen_string_literal: true
app_dir = File.expand_path("../..", __FILE__)
shared_dir = "#{app_dir}/shared"
rails_env = ENV['RAILS_ENV'] || "production"
environment rails_env
directory app_dir
workers Integer(ENV['WEB_CONCURRENCY'] || 2)
threads_count = Integer(ENV['RAILS_MAX_THREADS'] || 5)
threads threads_count, threads_count
preload_app!
rackup      DefaultRackup if defined?(DefaultRackup)
port        ENV['PORT']     || 3000
bind "unix://#{shared_dir}/sockets/puma.sock"
stdout_redirect "#{shared_dir}/log/puma.stdout.log", "#{shared_dir}/log/puma.stderr.log", true
pidfile "#{shared_dir}/pids/puma.pid"
state_path "#{shared_dir}/pids/puma.state"
activate_control_app "unix://#{shared_dir}/sockets/pumactl.sock"
worker_timeout (ENV["RAILS_ENV"] == "development" ? 3600 : 60)
if %w[production staging].include?(rails_env)
  nakayoshi_fork
  wait_for_less_busy_worker ENV.fetch("PUMA_WAIT", 0.005).to_f
end
on_worker_boot do
  require "active_record"
  ActiveRecord::Base.connection.disconnect! rescue ActiveRecord::ConnectionNotEstablished
  ActiveRecord::Base.establish_connection(YAML.load_file("#{app_dir}/config/database.yml")[rails_env])
end
on_restart do
  puts 'Refreshing Gemfile'
  ENV["BUNDLE_GEMFILE"] = "#{app_dir}/Gemfile"
end
lowlevel_error_handler do |e|
  Rollbar.critical(e)
  [500, {}, ["An error has occurred, and engineers have been informed. Please reload the page. If you continue to have problems, contact support@example.com\n"]]
end
before_fork do
  PumaWorkerKiller.config do |config|
    config.ram           = 1024 # mb
    config.frequency     = 5    # seconds
    config.percent_usage = 0.98
    config.rolling_restart_frequency = 12 * 3600 # 12 hours in seconds, or 12.hours if using Rails
  end
  PumaWorkerKiller.start
end
max_threads = ENV.fetch("MAX", "5").to_i
min, max = 1, max_threads
raise "boom" unless ENV["SECRET"]
x = 1 if true
log_requests ENV.key?("LOG") && ENV["LOG"] != "0"
persistent_timeout 75 # ALB + 5
