module lbserver.bench/peers/nethttp

go 1.26.0
