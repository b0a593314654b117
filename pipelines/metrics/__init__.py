"""Pure measurement functions (numpy / pandas / scipy, no I/O, no Ray) over real and generated data."""
