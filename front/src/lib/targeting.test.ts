import { describe, expect, it } from "vitest";
import { splitNames } from "./targeting";

describe("targeting rules form", () => {
  it("splits namespace lists on commas and spaces", () => {
    expect(splitNames(" shop, payments  kube-public,,")).toEqual(["shop", "payments", "kube-public"]);
    expect(splitNames("   ")).toEqual([]);
  });
});
