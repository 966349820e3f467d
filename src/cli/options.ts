/** Parsers for option values, raising commander's invalid-argument error with the allowed values. */
import { InvalidArgumentError } from "commander";

export function positiveInteger(name: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < 1) {
      throw new InvalidArgumentError(`${name} must be a whole number of 1 or more, got "${value}"`);
    }
    return parsed;
  };
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function oneOf(allowed: readonly string[]) {
  return (value: string): string => {
    if (!allowed.includes(value)) {
      throw new InvalidArgumentError(`allowed values are ${allowed.join(", ")}; got "${value}"`);
    }
    return value;
  };
}
