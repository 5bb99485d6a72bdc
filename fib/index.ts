// The public surface of fib/: the kernel forwarding table programmer.
export {};
