"""demo.py: both servers started and awaited, the client run in this process, both stopped."""
