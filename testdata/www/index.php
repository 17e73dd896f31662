the front controller
