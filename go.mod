module github.com/lbserver/lbserver

go 1.26.8
