"""A local stand-in for the Microsoft identity platform and Graph v1.0, over a generated or
loaded world of tenants, served over real HTTPS with its own throwaway CA."""
