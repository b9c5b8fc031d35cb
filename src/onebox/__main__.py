from onebox.cli import main

main()
