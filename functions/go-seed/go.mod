module wisp.example/go-seed

go 1.21
