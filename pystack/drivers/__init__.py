"""Device drivers, as Linux's drivers/."""
