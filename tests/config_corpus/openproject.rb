# Source: opf/openproject, config/puma.rb (commit 040ccbd1647b1b0e96ddd9765481d81970fd6377).
# Licence: GPL-3.0. Rewritten faithfully for serval's tests: every statement is as in the
# original, in the same order; the comments are ours.

# threads: a minimum and a maximum, never below the minimum
threads_min_count = ENV.fetch("RAILS_MIN_THREADS") { 4 }.to_i
threads_max_count = ENV.fetch("RAILS_MAX_THREADS") { 16 }.to_i
threads threads_min_count, [threads_min_count, threads_max_count].max

# the port
port ENV.fetch("PORT") { 3000 }.to_i

# the environment
environment ENV.fetch("RAILS_ENV") { "development" }

# worker processes (0: single mode)
workers ENV.fetch("OPENPROJECT_WEB_WORKERS") { 0 }.to_i

# preload in production
preload_app! if ENV["RAILS_ENV"] == 'production'

# bin/rails restart, outside production
plugin :tmp_restart unless ENV["RAILS_ENV"] == 'production'
