aigw-assessor-package/1
8c7738bf-4e12-50ac-815d-d6a1dcd0c598
+hyPajCy5zzgnVb044mUbUsu0sHYpcgbmlaZCLsZYAk=

— aigw-test wbeI6lh4xqY6JjiliPkCCGRV65k/HW/w60tKHiwkB+8jON/x4K3eguEVKsLJSjt4nXy3DZ740k2eTtcy50f6sZHcYQE=
