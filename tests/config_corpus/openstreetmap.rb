# Source: openstreetmap/openstreetmap-website, config/puma.rb (commit
# 2bb0d20faea27b4d79d8bdbce750b51c609fb2f3). Licence: GPL-2.0. Rewritten faithfully for
# serval's tests: every statement is as in the original, in the same order; the comments
# are ours (the file follows Rails' template).
# frozen_string_literal: true

# threads per worker, from RAILS_MAX_THREADS
threads_count = ENV.fetch("RAILS_MAX_THREADS", 3)
threads threads_count, threads_count

# the port
port ENV.fetch("PORT", 3000)

# bin/rails restart
plugin :tmp_restart

# Solid Queue inside Puma, when asked for
plugin :solid_queue if ENV["SOLID_QUEUE_IN_PUMA"]

# a pidfile only when asked for
pidfile ENV["PIDFILE"] if ENV["PIDFILE"]
