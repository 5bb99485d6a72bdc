// The public surface of config/: skein.yaml and Calico's resources from a file or etcd.
export {};
