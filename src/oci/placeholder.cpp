namespace kiln {} // replaced by oci.cpp
