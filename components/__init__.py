"""The app's tabs (one module each), page state, shared services and style."""
