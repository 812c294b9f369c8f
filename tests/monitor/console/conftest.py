from console_site import site

__all__ = ["site"]
