"""``python -m onebox.testing.fake_upstream --port P ...``"""

from onebox.testing.fake_upstream.server import main

if __name__ == "__main__":
    main()
