"""The information model (docs/science.md §7): the closed-form loss surface (`model`), its
optimal allocation of a budget (`allocation`) and its parameter bootstrap (`boot`)."""
