# Source: discourse/discourse, config/puma.rb (commit 138a20abdafc6d22c46fcf4373e91ec06be79c02).
# Licence: GPL-2.0. Rewritten faithfully for serval's tests: every statement is as in the
# original, in the same order; the comments are ours.
# frozen_string_literal: true

if ENV['RAILS_ENV'] == 'production'

  # where the app lives
  APP_ROOT = ENV["APP_ROOT"] || '/home/discourse/discourse'
  num_workers = ENV["NUM_WEBS"].to_i > 0 ? ENV["NUM_WEBS"].to_i : 4

  # processes, then threads per process
  workers "#{num_workers}"
  threads 8, 32

  # sockets, logs, pid and state files under the app
  bind "unix://#{APP_ROOT}/tmp/sockets/puma.sock"
  stdout_redirect "#{APP_ROOT}/log/puma.log", "#{APP_ROOT}/log/puma.err.log"
  pidfile "#{APP_ROOT}/tmp/pids/puma.pid"
  state_path "#{APP_ROOT}/tmp/pids/puma.state"
  preload_app!

end
