tag "#{1
