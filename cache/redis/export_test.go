package redis

// SharedAddr returns the address of the redis-server started by TestMain.
func SharedAddr() string { return exampleAddr }
