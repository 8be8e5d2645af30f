on_worker_boot do |i|
  x = "#{i}"
