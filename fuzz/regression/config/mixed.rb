case
when Foo.bar, 2 then workers 5
else workers 6
end
a, b = [1, 2]
x ||= ENV["Q"]&.to_i
n = if x then 1 else 2 end
threads 1, [n, 3].max
%w[a b].include?("a")
