# Source: forem/forem, config/puma.rb (commit 01de4a27c471575bf323168c5960f5a9dba53721).
# Licence: AGPL-3.0. Rewritten faithfully for serval's tests: every statement is as in the
# original, in the same order; the comments are ours.
workers Integer(ENV["WEB_CONCURRENCY"] || 2)
threads_count = Integer(ENV["MAX_THREADS"] || 5)
threads threads_count, threads_count

worker_timeout 15
worker_shutdown_timeout 8

preload_app!

rackup DefaultRackup
port ENV["PORT"] || 3000
environment ENV["RACK_ENV"] || "development"

on_worker_boot do
  # reconnect the database in each worker
  ActiveRecord::Base.establish_connection
end

before_fork do
  require "puma_worker_killer"
  PumaWorkerKiller.enable_rolling_restart(12 * 3600) # twelve hours
end
