aigw-assessor-package/1
0b8bc86b-7e9a-50d7-ae63-fca3ea1bf9da
9oPxXsv6KY+BqZjYRO+Qrg4PWAEbYPhYXivVXul0h+g=

— aigw-test wbeI6gCsk84dJtVR+vMLY8419nji7h1rLHkEkeA9dOpFcxjwVkRRhRshZlNBwIam+VxftTOK06x9lZFKgH9DWwUi3gQ=
